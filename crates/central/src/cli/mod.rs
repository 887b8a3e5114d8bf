//! The command line (contract section 1): `serve`, `migrate`, `check`, `sell allow-file`, and
//! the administrative commands as thin clients of the admin API. Exit 0 ok, 1 error, 3 no
//! server running. Below it: [`client`] (the admin socket's client), [`text`] (what the
//! commands print) and [`check`] (the `check` command); it calls down into `http` for `serve`.

pub mod check;
pub mod client;
pub mod text;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use crate::cli::client::{Client, ClientError};
use crate::config::{self, Config};

#[derive(Parser)]
#[command(
    name = "plesk-reseller-central",
    version,
    about = "The reseller store's side of the plesk-reseller-agent protocol"
)]
pub struct Cli {
    /// The config file (default /etc/plesk-reseller-central/central.ini, or $PLESK_RESELLER_CENTRAL_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server in the foreground.
    Serve {
        /// Write the agents' listener's bound address here once listening (for scripts and tests).
        #[arg(long, value_name = "PATH")]
        address_file: Option<PathBuf>,
    },
    /// Bring the database schema up to date, then exit.
    Migrate,
    /// The fleet of Plesk servers.
    #[command(subcommand)]
    Hosts(HostsCmd),
    /// The job queue and results.
    #[command(subcommand)]
    Jobs(JobsCmd),
    /// What the reseller sells.
    #[command(subcommand)]
    Sell(SellCmd),
    /// Orders: a paid license bought from KA and installed on the server.
    #[command(subcommand)]
    Orders(OrdersCmd),
    /// Keys with which servers enroll themselves (no token to copy).
    #[command(subcommand)]
    EnrollKeys(EnrollKeysCmd),
    /// Licenses the central bought or adopted, and their life after the sale.
    #[command(subcommand)]
    Licenses(LicensesCmd),
    /// The event feed the store also gets as webhooks.
    #[command(subcommand)]
    Events(EventsCmd),
    /// Check the config, TLS files, the database and the listen addresses.
    Check {
        /// Also ask KA whether it accepts the [ka] credentials (one read-only request).
        #[arg(long)]
        online: bool,
    },
}

#[derive(Subcommand)]
pub enum HostsCmd {
    /// Register a Plesk server; prints its token and push secret once.
    Add {
        /// The server's id, its agent's [central] host_id (letters, digits, . _ -).
        id: String,
        /// Where its agent takes signed wake-ups, e.g. http://web-042.example.com:8787 (its [push] listen).
        #[arg(long, value_name = "URL")]
        push_url: Option<String>,
    },
    /// The fleet.
    List,
    /// One host: last seen, key number, versions, panel.ini, problems, queued jobs.
    Show {
        /// The host's id.
        id: String,
    },
    /// Per-host values ("" = the key must be absent; --unset-…: the fleet default).
    Set(SetArgs),
    /// A new token; the old one stops working at once.
    RotateToken {
        /// The host's id.
        id: String,
    },
    /// Forget the host and its jobs.
    Rm {
        /// The host's id.
        id: String,
    },
}

#[derive(Args)]
pub struct SetArgs {
    /// The host's id.
    id: String,
    /// This host's [extensions] buyUrl instead of the fleet's ("" = the key must be absent).
    #[arg(long, value_name = "URL", conflicts_with = "unset_buy_url")]
    buy_url: Option<String>,
    /// This host's [extensions] catalog.url instead of the fleet's ("" = the key must be absent).
    #[arg(long, value_name = "URL", conflicts_with = "unset_catalog_url")]
    catalog_url: Option<String>,
    /// Where its agent takes signed wake-ups ("" = no pushes).
    #[arg(long, value_name = "URL", conflicts_with = "unset_push_url")]
    push_url: Option<String>,
    /// Back to the fleet's buy_url ([fleet] in the config).
    #[arg(long)]
    unset_buy_url: bool,
    /// Back to the fleet's catalog_url ([fleet] in the config).
    #[arg(long)]
    unset_catalog_url: bool,
    /// No wake-up pushes for this host.
    #[arg(long)]
    unset_push_url: bool,
}

#[derive(Subcommand)]
pub enum JobsCmd {
    /// Queue a job and wake the host (nothing is bought: a paid order is `orders add`).
    Add(AddJob),
    /// The queue, oldest first.
    List {
        /// Only this host's jobs.
        #[arg(long, value_name = "ID")]
        host: Option<String>,
        /// Only jobs in this state: queued, succeeded, failed, rejected or cancelled.
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
    },
    /// One job with its result.
    Show {
        /// The job's id (j-…), as jobs add printed it.
        id: String,
    },
    /// Cancel a queued job.
    Cancel {
        /// The job's id (j-…).
        id: String,
    },
}

#[derive(Args)]
pub struct AddJob {
    /// The host to run it on, by id.
    #[arg(long, global = true, value_name = "ID", conflicts_with = "key_number")]
    host: Option<String>,
    /// The host to run it on, by the Plesk key number its agent last reported (PLSK.12345678.0001).
    #[arg(long, global = true, value_name = "KN")]
    key_number: Option<String>,
    /// Your retry key: the same key for the same host returns the first job instead of a second.
    #[arg(long, global = true, value_name = "KEY")]
    idempotency_key: Option<String>,
    #[command(subcommand)]
    what: JobWhat,
}

#[derive(Subcommand)]
pub enum JobWhat {
    /// `plesk bin license -i CODE` on the host.
    InstallKey {
        /// The activation code, e.g. A00000-K6QK03-KSG046-H6BK67-1GE201.
        code: String,
    },
    /// `plesk bin license --retrieve` on the host.
    RetrieveKeys,
}

#[derive(Subcommand)]
pub enum LicensesCmd {
    /// The licenses, oldest first.
    List {
        /// Only the licenses of this host.
        #[arg(long, value_name = "ID")]
        host: Option<String>,
        /// Only licenses in this state: active, suspended, terminated or expired.
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
    },
    /// One license (by KA key id or key number) with KA's last-read fields and its operations.
    Show {
        /// The KA key id (12345678) or key number (PLSK.12345678.0001).
        id: String,
    },
    /// Record a key bought elsewhere (read from KA; nothing is bought).
    Adopt {
        /// The key number (PLSK.12345678.0001).
        #[arg(long, value_name = "KN", conflicts_with = "key_id")]
        key_number: Option<String>,
        /// The KA key id.
        #[arg(long, value_name = "N")]
        key_id: Option<u64>,
        /// The host it is installed on (default: the host whose report carries its key number).
        #[arg(long, value_name = "ID")]
        host: Option<String>,
    },
    /// Suspend the key in KA (PUT suspended=true), then retrieve keys on its host.
    Suspend(OpArgs),
    /// Resume the key in KA (PUT suspended=false), then retrieve keys on its host.
    Resume(OpArgs),
    /// Change the key's items in KA to exactly this list, then retrieve keys on its host.
    Change {
        #[command(flatten)]
        op: OpArgs,
        /// The whole target list of KA item constants, comma-separated.
        #[arg(long, value_name = "A[,B…]", value_delimiter = ',', required = true)]
        items: Vec<String>,
    },
    /// Terminate the key in KA (DELETE; cannot be undone), then retrieve keys on its host.
    Terminate {
        #[command(flatten)]
        op: OpArgs,
        /// Terminate the main license's active extension licenses first, each its own operation.
        #[arg(long)]
        with_extensions: bool,
    },
    /// Read the key from KA again (nothing changes in KA).
    Refresh(OpArgs),
}

#[derive(Args)]
pub struct OpArgs {
    /// The license: KA key id (12345678) or key number (PLSK.12345678.0001).
    id: String,
    /// Your retry key: the same id again returns the first operation, never a second KA call.
    #[arg(long, value_name = "K")]
    op_id: Option<String>,
    /// Do not queue the retrieve_keys job on the license's host.
    #[arg(long)]
    no_retrieve: bool,
}

#[derive(Subcommand)]
pub enum OrdersCmd {
    /// Take an order (returns at once; KA and the job follow): --host H --plesk, or
    /// --key-number KN --extension EXT-ID.
    Add {
        /// The store's own order id; the same id is bought once however often it is sent.
        #[arg(long, value_name = "ID")]
        order_id: String,
        /// The registered host that gets the new Plesk license (with --plesk).
        #[arg(long, value_name = "ID", requires = "plesk", conflicts_with_all = ["key_number", "extension"])]
        host: Option<String>,
        /// A main Plesk key for the host.
        #[arg(long, requires = "host")]
        plesk: bool,
        /// The main key the extension is attached to, as Buy Now passed it (PLSK.12345678.0001).
        #[arg(long, value_name = "KN", requires = "extension")]
        key_number: Option<String>,
        /// An extension id of the [sell] list.
        #[arg(long, value_name = "EXT-ID", requires = "key_number")]
        extension: Option<String>,
    },
    /// The orders, oldest first.
    List {
        /// Only orders in this state: pending, licensed, queued, done or failed.
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
    },
    /// One order, with KA's error if any.
    Show {
        /// The order's id (the store's --order-id).
        id: String,
    },
    /// Drive an `attention` or `failed` order again, from the lookup in KA.
    Retry {
        /// The order's id (the store's --order-id).
        id: String,
    },
}

#[derive(Subcommand)]
pub enum EnrollKeysCmd {
    /// Make a key; it is printed once, as prk_<id>_<secret>.
    Create {
        /// How many hosts it may enroll (default 1).
        #[arg(long, value_name = "N", conflicts_with = "host")]
        uses: Option<i64>,
        /// Its lifetime: 30m, 1h, 7d (default 24h, at most 90d).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// Only host ids matching this glob, e.g. 'web-*'.
        #[arg(long, value_name = "GLOB", conflicts_with = "host")]
        host_pattern: Option<String>,
        /// Only this host id (1 use); it may also re-enroll that host after a re-install.
        #[arg(long, value_name = "ID")]
        host: Option<String>,
        /// A note for people (what the key is for).
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// The keys: uses left, expiry, pattern or host, last use, the hosts each enrolled (never the key).
    List,
    /// The key stops working at once; hosts it enrolled keep their tokens.
    Revoke {
        /// The key's id (the part after prk_).
        id: String,
    },
}

#[derive(Subcommand)]
pub enum EventsCmd {
    /// The events kept (30 days), oldest first.
    List {
        /// Only events with a larger id than this (the last one you have).
        #[arg(long, value_name = "ID")]
        after: Option<i64>,
        /// Only events of this type, e.g. order.done.
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// Only events whose webhook is pending or undeliverable.
        #[arg(long)]
        undelivered: bool,
    },
}

#[derive(Subcommand)]
pub enum SellCmd {
    /// Print the [sell] extension ids, one a line (the catalog proxy's allow_file).
    AllowFile,
}

/// Parses argv, runs the command, returns the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    crate::logging::init(tracing::level_filters::LevelFilter::INFO);
    let path = config::resolve_path(cli.config.as_deref());
    let config = match config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    rt.block_on(run(cli, config))
}

async fn run(cli: Cli, config: Config) -> i32 {
    let json = cli.json;
    match cli.command {
        Command::Serve { address_file } => serve(config, address_file).await,
        Command::Migrate => migrate(&config).await,
        Command::Check { online } => crate::cli::check::run(&config, json, online).await,
        Command::Sell(SellCmd::AllowFile) => {
            let ids: Vec<&str> = config.sell.iter().map(|(k, _)| k.as_str()).collect();
            if json {
                println!("{}", json!(ids));
            } else {
                for id in ids {
                    println!("{id}");
                }
            }
            0
        }
        Command::Hosts(c) => admin_call(&config, json, hosts_request(c)).await,
        Command::Jobs(c) => admin_call(&config, json, jobs_request(c)).await,
        Command::Orders(c) => admin_call(&config, json, orders_request(c)).await,
        Command::EnrollKeys(c) => admin_call(&config, json, enroll_keys_request(c)).await,
        Command::Licenses(c) => admin_call(&config, json, licenses_request(c)).await,
        Command::Events(EventsCmd::List {
            after,
            kind,
            undelivered,
        }) => events_list(&config, json, after, kind, undelivered).await,
    }
}

async fn serve(config: Config, address_file: Option<PathBuf>) -> i32 {
    match crate::http::server::serve(config, address_file, stop_signal()).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

async fn migrate(config: &Config) -> i32 {
    let result = async {
        let db = crate::db::connect(&config.database_url).await?;
        db.migrate().await?;
        db.close().await;
        Ok::<_, crate::db::DbError>(db.url)
    }
    .await;
    match result {
        Ok(url) => {
            println!("the database {url} is up to date");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// One admin call: method, path, body, and how to print the answer as text.
pub struct Request {
    method: Method,
    path: String,
    body: Option<Value>,
    text: fn(&Value) -> String,
}

fn seg(s: &str) -> String {
    plesk_reseller_protocol::paths::encode_segment(s)
}

fn hosts_request(c: HostsCmd) -> Request {
    let r = |method, path: String, body, text| Request {
        method,
        path,
        body,
        text,
    };
    match c {
        HostsCmd::Add { id, push_url } => r(
            Method::POST,
            "/admin/v1/hosts".into(),
            Some(json!({"id": id, "push_url": push_url})),
            crate::cli::text::host_added,
        ),
        HostsCmd::List => r(Method::GET, "/admin/v1/hosts".into(), None, crate::cli::text::host_list),
        HostsCmd::Show { id } => r(
            Method::GET,
            format!("/admin/v1/hosts/{}", seg(&id)),
            None,
            crate::cli::text::host,
        ),
        HostsCmd::Set(a) => {
            let mut body = serde_json::Map::new();
            for (key, set, unset) in [
                ("buy_url", a.buy_url, a.unset_buy_url),
                ("catalog_url", a.catalog_url, a.unset_catalog_url),
                ("push_url", a.push_url, a.unset_push_url),
            ] {
                if unset {
                    body.insert(key.into(), Value::Null);
                } else if let Some(v) = set {
                    body.insert(key.into(), Value::String(v));
                }
            }
            r(
                Method::PATCH,
                format!("/admin/v1/hosts/{}", seg(&a.id)),
                Some(Value::Object(body)),
                crate::cli::text::host,
            )
        }
        HostsCmd::RotateToken { id } => r(
            Method::POST,
            format!("/admin/v1/hosts/{}/rotate-token", seg(&id)),
            None,
            crate::cli::text::token,
        ),
        HostsCmd::Rm { id } => r(
            Method::DELETE,
            format!("/admin/v1/hosts/{}", seg(&id)),
            None,
            crate::cli::text::removed,
        ),
    }
}

fn jobs_request(c: JobsCmd) -> Request {
    let r = |method, path: String, body, text| Request {
        method,
        path,
        body,
        text,
    };
    match c {
        JobsCmd::Add(a) => {
            let (kind, code) = match a.what {
                JobWhat::InstallKey { code } => ("install_key", Some(code)),
                JobWhat::RetrieveKeys => ("retrieve_keys", None),
            };
            let body = json!({"host": a.host, "key_number": a.key_number, "type": kind,
                              "activation_code": code, "idempotency_key": a.idempotency_key});
            r(Method::POST, "/admin/v1/jobs".into(), Some(body), crate::cli::text::job)
        }
        JobsCmd::List { host, state } => {
            let mut q = Vec::new();
            if let Some(h) = host {
                q.push(format!("host={}", seg(&h)));
            }
            if let Some(s) = state {
                q.push(format!("state={}", seg(&s)));
            }
            let path = if q.is_empty() {
                "/admin/v1/jobs".to_string()
            } else {
                format!("/admin/v1/jobs?{}", q.join("&"))
            };
            r(Method::GET, path, None, crate::cli::text::job_list)
        }
        JobsCmd::Show { id } => r(
            Method::GET,
            format!("/admin/v1/jobs/{}", seg(&id)),
            None,
            crate::cli::text::job,
        ),
        JobsCmd::Cancel { id } => r(
            Method::POST,
            format!("/admin/v1/jobs/{}/cancel", seg(&id)),
            None,
            crate::cli::text::job,
        ),
    }
}

fn orders_request(c: OrdersCmd) -> Request {
    let r = |method, path: String, body| Request {
        method,
        path,
        body,
        text: crate::cli::text::order_or_list,
    };
    match c {
        OrdersCmd::Add {
            order_id,
            host,
            plesk,
            key_number,
            extension,
        } => r(
            Method::POST,
            "/admin/v1/orders".into(),
            Some(json!({"order_id": order_id, "host": host, "plesk": plesk,
                        "key_number": key_number, "extension": extension})),
        ),
        OrdersCmd::List { state } => r(
            Method::GET,
            match state {
                Some(s) => format!("/admin/v1/orders?state={}", seg(&s)),
                None => "/admin/v1/orders".into(),
            },
            None,
        ),
        OrdersCmd::Show { id } => r(Method::GET, format!("/admin/v1/orders/{}", seg(&id)), None),
        OrdersCmd::Retry { id } => r(Method::POST, format!("/admin/v1/orders/{}/retry", seg(&id)), None),
    }
}

fn licenses_request(c: LicensesCmd) -> Request {
    let op = |a: OpArgs, kind: &str, items: Option<Vec<String>>, with_extensions: bool| Request {
        method: Method::POST,
        path: format!("/admin/v1/licenses/{}/operations", seg(&a.id)),
        body: Some(json!({"op_id": a.op_id, "kind": kind, "items": items,
                          "no_retrieve": a.no_retrieve, "with_extensions": with_extensions})),
        text: crate::cli::text::operation,
    };
    match c {
        LicensesCmd::List { host, state } => {
            let mut q = Vec::new();
            if let Some(h) = host {
                q.push(format!("host={}", seg(&h)));
            }
            if let Some(s) = state {
                q.push(format!("state={}", seg(&s)));
            }
            let path = if q.is_empty() {
                "/admin/v1/licenses".to_string()
            } else {
                format!("/admin/v1/licenses?{}", q.join("&"))
            };
            Request {
                method: Method::GET,
                path,
                body: None,
                text: crate::cli::text::license_or_list,
            }
        }
        LicensesCmd::Show { id } => Request {
            method: Method::GET,
            path: format!("/admin/v1/licenses/{}", seg(&id)),
            body: None,
            text: crate::cli::text::license_or_list,
        },
        LicensesCmd::Adopt {
            key_number,
            key_id,
            host,
        } => Request {
            method: Method::POST,
            path: "/admin/v1/licenses".into(),
            body: Some(json!({"key_number": key_number, "key_id": key_id, "host": host})),
            text: crate::cli::text::license_or_list,
        },
        LicensesCmd::Suspend(a) => op(a, "suspend", None, false),
        LicensesCmd::Resume(a) => op(a, "resume", None, false),
        LicensesCmd::Change { op: a, items } => op(a, "change", Some(items), false),
        LicensesCmd::Terminate { op: a, with_extensions } => op(a, "terminate", None, with_extensions),
        LicensesCmd::Refresh(a) => op(a, "refresh", None, false),
    }
}

/// `events list`: page after page of the feed (the admin API returns at most 1000 a request).
async fn events_list(config: &Config, json: bool, after: Option<i64>, kind: Option<String>, undelivered: bool) -> i32 {
    const PAGE: usize = 1000;
    let client = Client::new(&config.server.admin_socket);
    let mut all = Vec::new();
    let mut after = after.unwrap_or(0);
    loop {
        let mut path = format!("/admin/v1/events?after={after}&limit={PAGE}");
        if let Some(t) = &kind {
            path.push_str(&format!("&type={}", seg(t)));
        }
        if undelivered {
            path.push_str("&undelivered=true");
        }
        let page = match client.call(Method::GET, &path, None).await {
            Ok(Value::Array(page)) => page,
            Ok(_) => {
                eprintln!("the central server answered something other than a list of events");
                return 1;
            }
            Err(e @ ClientError::NoServer(_)) => {
                eprintln!("{e}");
                return 3;
            }
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
        };
        let full = page.len() == PAGE;
        after = page.last().and_then(|e| e["id"].as_i64()).unwrap_or(after);
        all.extend(page);
        if !full {
            break;
        }
    }
    let v = Value::Array(all);
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", crate::cli::text::event_list(&v));
    }
    0
}

fn enroll_keys_request(c: EnrollKeysCmd) -> Request {
    match c {
        EnrollKeysCmd::Create {
            uses,
            expires,
            host_pattern,
            host,
            note,
        } => Request {
            method: Method::POST,
            path: "/admin/v1/enroll-keys".into(),
            body: Some(json!({"uses": uses, "expires": expires, "host_pattern": host_pattern,
                              "host": host, "note": note})),
            text: crate::cli::text::enroll_key_created,
        },
        EnrollKeysCmd::List => Request {
            method: Method::GET,
            path: "/admin/v1/enroll-keys".into(),
            body: None,
            text: crate::cli::text::enroll_key_list,
        },
        EnrollKeysCmd::Revoke { id } => Request {
            method: Method::POST,
            path: format!("/admin/v1/enroll-keys/{}/revoke", seg(&id)),
            body: None,
            text: crate::cli::text::enroll_key_revoked,
        },
    }
}

async fn admin_call(config: &Config, json: bool, req: Request) -> i32 {
    let client = Client::new(&config.server.admin_socket);
    match client.call(req.method, &req.path, req.body).await {
        Ok(v) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", (req.text)(&v));
            }
            0
        }
        Err(e @ ClientError::NoServer(_)) => {
            eprintln!("{e}");
            3
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every argument and option of every command says in `--help` what it is for.
    #[test]
    fn every_argument_has_a_help_line() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "plesk-reseller-central", &mut missing);
        assert!(missing.is_empty(), "no help line for: {}", missing.join(", "));
    }
}
