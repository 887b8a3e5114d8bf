//! The CLI's text output (without `--json`): short lines for people.

use serde_json::Value;

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

pub fn host_added(v: &Value) -> String {
    format!(
        "host {} added\ntoken: {}\npush secret: {}\nBoth are shown only now: put the token in /etc/plesk-reseller-agent/token (mode 0600) on the server, \
         the push secret in its [push] secret_file.\n",
        s(v, "id"),
        s(v, "token"),
        s(v, "push_secret")
    )
}

pub fn token(v: &Value) -> String {
    format!("new token: {}\nThe old token no longer works.\n", s(v, "token"))
}

pub fn removed(v: &Value) -> String {
    format!("host {} removed\n", s(v, "id"))
}

fn in_sync(v: &Value) -> &'static str {
    match v.pointer("/report/panel_ini/in_sync").and_then(Value::as_bool) {
        Some(true) => "in sync",
        Some(false) => "NOT in sync",
        None => "no report",
    }
}

pub fn host_list(v: &Value) -> String {
    let mut out = String::from("ID\tLAST SEEN\tKEY NUMBER\tAGENT\tPANEL.INI\tPROBLEMS\n");
    for h in v.as_array().into_iter().flatten() {
        let problems = h
            .pointer("/report/problems")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            s(h, "id"),
            s(h, "last_seen_at"),
            s(h, "key_number"),
            s(h, "agent_version"),
            in_sync(h),
            problems
        ));
    }
    out
}

pub fn host(h: &Value) -> String {
    let mut out = format!(
        "host {}\nlast seen: {}\nkey number: {}\nagent version: {}\npanel.ini: {}\nbuy_url: {}\ncatalog_url: {}\npush_url: {}\n",
        s(h, "id"),
        s(h, "last_seen_at"),
        s(h, "key_number"),
        s(h, "agent_version"),
        in_sync(h),
        h.get("buy_url").and_then(Value::as_str).unwrap_or("(fleet)"),
        h.get("catalog_url").and_then(Value::as_str).unwrap_or("(fleet)"),
        s(h, "push_url"),
    );
    // How it joined (version 2): an enroll key, or `hosts add`.
    match h.get("enrolled_by").and_then(Value::as_str) {
        Some(k) => out.push_str(&format!("joined: enroll key {k} at {}\n", s(h, "enrolled_at"))),
        None => out.push_str("joined: hosts add\n"),
    }
    for p in h
        .pointer("/report/problems")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("problem: {}\n", p.as_str().unwrap_or("?")));
    }
    for j in h.get("queued_jobs").and_then(Value::as_array).into_iter().flatten() {
        out.push_str(&format!("queued: {} {}\n", s(j, "id"), s(j, "type")));
    }
    out
}

pub fn job(j: &Value) -> String {
    let mut out = format!(
        "job {}\nhost: {}\ntype: {}\nstate: {}\nqueued at: {}\n",
        s(j, "id"),
        s(j, "host"),
        s(j, "type"),
        s(j, "state"),
        s(j, "created_at")
    );
    if let Some(r) = j.get("result").filter(|r| !r.is_null()) {
        out.push_str(&format!(
            "ended at: {}\nresult: {}\nexit code: {}\noutput:\n{}\n",
            s(j, "ended_at"),
            s(r, "status"),
            r.get("exit_code").map_or("-".into(), |c| c.to_string()),
            s(r, "output")
        ));
    }
    out
}

pub fn job_list(v: &Value) -> String {
    let mut out = String::from("ID\tHOST\tTYPE\tSTATE\tQUEUED AT\n");
    for j in v.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            s(j, "id"),
            s(j, "host"),
            s(j, "type"),
            s(j, "state"),
            s(j, "created_at")
        ));
    }
    out
}

/// One order (a line per field that is set) or a list of orders (a line each).
pub fn order_or_list(v: &Value) -> String {
    if let Some(list) = v.as_array() {
        let mut out = String::from("ORDER\tSTATE\tKIND\tHOST\tEXTENSION\tKA KEY\tJOB\n");
        for o in list {
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                s(o, "id"),
                s(o, "state"),
                s(o, "kind"),
                s(o, "host"),
                s(o, "extension_id"),
                s(o, "ka_key_number"),
                s(o, "job_id")
            ));
        }
        return out;
    }
    let mut out = format!("order {}: {}\n", s(v, "id"), s(v, "state"));
    for k in [
        "kind",
        "host",
        "key_number",
        "extension_id",
        "ka_item",
        "ka_key_number",
        "job_id",
        "created_at",
        "updated_at",
    ] {
        if let Some(x) = v.get(k).and_then(Value::as_str) {
            out.push_str(&format!("  {k}: {x}\n"));
        }
    }
    out.push_str(&format!(
        "  ka_attempts: {}\n",
        v.get("ka_attempts").unwrap_or(&Value::Null)
    ));
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        out.push_str(&format!("  error (as KA or the agent gave it): {e}\n"));
    }
    out
}

/// One license (a line per field, its operations) or a list of licenses (a line each).
pub fn license_or_list(v: &Value) -> String {
    let n = |x: &Value, k: &str| match x.get(k) {
        Some(Value::Null) | None => "-".to_string(),
        Some(Value::String(t)) => t.clone(),
        Some(other) => other.to_string(),
    };
    if let Some(list) = v.as_array() {
        let mut out = String::from("LICENSE\tKEY NUMBER\tKIND\tSTATE\tHOST\tKA STATUS\tDRIFT\n");
        for l in list {
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                n(l, "id"),
                n(l, "key_number"),
                n(l, "kind"),
                n(l, "state"),
                n(l, "host"),
                n(&l["ka"], "status"),
                n(l, "drift")
            ));
        }
        return out;
    }
    let mut out = format!("license {} ({}): {}\n", n(v, "id"), n(v, "key_number"), n(v, "state"));
    for k in [
        "kind", "items", "parent", "children", "host", "order", "drift", "drift_at",
    ] {
        out.push_str(&format!("  {k}: {}\n", n(v, k)));
    }
    out.push_str(&format!(
        "  key revision: KA has {}, the server has {}\n",
        n(v, "key_number"),
        n(v, "host_key_number")
    ));
    for k in [
        "status",
        "suspended",
        "terminated",
        "expiration_date",
        "auto_renew",
        "items",
        "checked_at",
    ] {
        out.push_str(&format!("  ka.{k}: {}\n", n(&v["ka"], k)));
    }
    for o in v.get("operations").and_then(Value::as_array).into_iter().flatten() {
        out.push_str(&format!(
            "  operation {} {}: {} (job {} {}){}\n",
            n(o, "id"),
            n(o, "kind"),
            n(o, "state"),
            n(o, "job_id"),
            n(o, "job_state"),
            o.get("error")
                .and_then(Value::as_str)
                .map(|e| format!("; KA: {e}"))
                .unwrap_or_default()
        ));
    }
    out
}

/// `events list`: one line per event, its data as compact JSON.
pub fn event_list(v: &Value) -> String {
    let mut out = String::from("ID\tTIME\tTYPE\tWEBHOOK\tDATA\n");
    for e in v.as_array().into_iter().flatten() {
        let delivery = match (
            e.pointer("/delivery/state").and_then(Value::as_str),
            e.pointer("/delivery/attempts"),
        ) {
            (Some(st), Some(n)) if n.as_i64().unwrap_or(0) > 0 && st != "delivered" => format!("{st} ({n} tries)"),
            (Some(st), _) => st.to_string(),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            e.get("id").and_then(Value::as_i64).unwrap_or(0),
            s(e, "timestamp"),
            s(e, "type"),
            delivery,
            e.get("data").map(Value::to_string).unwrap_or_default()
        ));
    }
    out
}

/// One license operation.
pub fn operation(v: &Value) -> String {
    let mut out = format!("operation {}: {}\n", s(v, "id"), s(v, "state"));
    for k in [
        "kind",
        "job_id",
        "job_state",
        "job_wait",
        "parent_op",
        "created_at",
        "updated_at",
    ] {
        if let Some(x) = v.get(k).and_then(Value::as_str) {
            out.push_str(&format!("  {k}: {x}\n"));
        }
    }
    out.push_str(&format!("  license: {}\n", v.get("license").unwrap_or(&Value::Null)));
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        out.push_str(&format!("  error (as KA gave it): {e}\n"));
    }
    out
}

fn key_scope(k: &Value) -> String {
    match (
        k.get("host").and_then(Value::as_str),
        k.get("host_pattern").and_then(Value::as_str),
    ) {
        (Some(h), _) => format!("host {h}"),
        (None, Some(p)) => format!("pattern {p}"),
        _ => "any host".into(),
    }
}

pub fn enroll_key_created(k: &Value) -> String {
    format!(
        "enroll key {} created ({}, {} use(s), expires {})\nkey: {}\nThe key is shown only now: put it in /etc/plesk-reseller-agent/enroll.key (mode 0600) on the server.\n",
        s(k, "id"),
        key_scope(k),
        k.get("uses").and_then(Value::as_i64).unwrap_or(0),
        s(k, "expires_at"),
        s(k, "key"),
    )
}

pub fn enroll_key_list(v: &Value) -> String {
    let mut out = String::from("ID\tNOTE\tUSES LEFT\tEXPIRES\tFOR\tLAST USED\tHOSTS\tREVOKED\n");
    for k in v.as_array().into_iter().flatten() {
        let hosts: Vec<&str> = k
            .get("hosts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        out.push_str(&format!(
            "{}\t{}\t{}/{}\t{}\t{}\t{}\t{}\t{}\n",
            s(k, "id"),
            s(k, "note"),
            k.get("uses_left").and_then(Value::as_i64).unwrap_or(0),
            k.get("uses").and_then(Value::as_i64).unwrap_or(0),
            s(k, "expires_at"),
            key_scope(k),
            s(k, "last_used_at"),
            if hosts.is_empty() { "-".into() } else { hosts.join(",") },
            if k.get("revoked").and_then(Value::as_bool) == Some(true) {
                "yes"
            } else {
                "no"
            },
        ));
    }
    out
}

pub fn enroll_key_revoked(k: &Value) -> String {
    format!(
        "enroll key {} revoked; the hosts it enrolled keep their tokens\n",
        s(k, "id")
    )
}
