//! The reseller store's protocol with plesk-reseller-agent, version 1 (agent contract
//! sections 5 and 7): the bodies and their JSON forms, the grammars of ids, key numbers and
//! activation codes, the URL paths, the header names and the wake signature. Pure types and
//! rules, no I/O and no clock, so the agent and the store-side server share one definition.
//!
//! - [`messages`]: instructions, jobs, results, reports;
//! - [`ids`]: job id and host id grammar;
//! - [`key_number`]: the key number's normal form;
//! - [`mask`]: the activation-code grammar and masking;
//! - [`paths`]: `/v1/hosts/{host}/…` builders and the route parser;
//! - [`wake`]: sign and verify `X-Signature` (the 300 s window).

pub mod ids;
pub mod key_number;
pub mod mask;
pub mod messages;
pub mod paths;
pub mod wake;

pub use ids::{is_valid_host_id, is_valid_job_id};
pub use key_number::{is_no_key, normalize_key_number};
pub use mask::{activation_codes as mask_activation_codes, is_activation_code};
pub use messages::{
    parse_raw_instructions, Instructions, Job, JobKind, JobResult, PanelIniValues, RawInstructions, Report,
    ReportPanelIni, ResultStatus,
};

/// The protocol version these types describe (the `/v1/` of every path).
pub const VERSION: u32 = 1;

/// Largest body either side accepts from the other (poll answers, results, reports).
pub const MAX_BODY: usize = 1024 * 1024;
/// Largest `output` of a result: the tail of stdout and stderr is kept.
pub const MAX_OUTPUT: usize = 16 * 1024;
/// Largest body of a wake push.
pub const MAX_WAKE_BODY: usize = 64 * 1024;
/// The long-poll parameter of the instructions URL: `?wait=<seconds>`.
pub const WAIT_PARAM: &str = "wait";

/// Header of a wake push: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "X-Signature";
/// Header of a poll: the server's normalised Plesk key number, when the agent knows it.
pub const KEY_NUMBER_HEADER: &str = "X-Plesk-Key-Number";
// ETag / If-None-Match on polls are HTTP's own headers and semantics (RFC 9110).

/// What breaks a protocol rule. The messages name the field at fault and never carry a
/// secret or an activation code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("not JSON: {0}")]
    NotJson(String),
    /// `what` is e.g. `panel_ini.buy_url` or `the top level`.
    #[error("{what} is {found}, not {expected}")]
    WrongType {
        what: String,
        found: &'static str,
        expected: &'static str,
    },
    #[error("the request has no X-Signature header")]
    SignatureMissing,
    #[error("the X-Signature header is not of the form t=<unix seconds>,v1=<hex HMAC-SHA256>")]
    SignatureMalformed,
    #[error("the X-Signature timestamp {t} is more than 300 seconds away from the agent's clock ({now})")]
    SignatureStale { t: u64, now: u64 },
    #[error("the X-Signature does not match the request body")]
    SignatureMismatch,
}
