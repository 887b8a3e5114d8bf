//! The admin API's OpenAPI 3.1 document (contract section 11), served at
//! `GET /admin/v1/openapi.json` and committed as `docs/openapi.json`. It is generated from the
//! handlers: each admin route is registered with its `#[utoipa::path]` description in one list
//! ([`crate::http::admin::routes`]), so a route cannot be served without being described.
//! What every route shares (the token, 401, 429, 500, and the body limits) is added here
//! once, so a route's annotation says only what is its own. How to add a route: docs/openapi.md.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Content, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, Ref, RefOr, Response as ApiResponse, ResponseBuilder,
    Type,
};

/// The admin API's error body: one sentence naming the value, host, job or order at fault.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What is wrong, in one sentence.
    pub error: String,
}

const SECURITY: &str = "admin_token";

/// The document: every admin route and what they all share. Pretty JSON with a final newline,
/// exactly as served and as committed in docs/openapi.json.
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        // Infallible in practice: the document is made of strings, maps and lists only.
        let mut s = document().to_pretty_json().unwrap_or_default();
        s.push('\n');
        s
    })
}

/// Builds the document from the admin routes.
pub fn document() -> OpenApi {
    let (_, mut api) = crate::http::admin::routes().split_for_parts();
    finish(&mut api);
    api
}

/// The document's frame: info, the bearer scheme, the shared responses on every operation.
fn finish(api: &mut OpenApi) {
    api.info = InfoBuilder::new()
        .title("plesk-reseller-central admin API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The admin API of plesk-reseller-central: hosts, jobs and orders. On the admin \
             socket ([server] admin_socket) every request is trusted (file permissions guard \
             it); on [server] admin_listen every request needs `Authorization: Bearer <admin \
             token>` (the file [server] admin_token_file). Errors are JSON `{\"error\": \"…\"}` \
             with one sentence, except the body limits (413, 408), which answer plain text.",
        ))
        .license(Some(utoipa::openapi::License::new("MIT")))
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        SECURITY,
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The admin token (admin_listen only; the admin socket needs none).",
                ))
                .build(),
        ),
    );
    components
        .schemas
        .insert("ErrorBody".into(), <ErrorBody as utoipa::PartialSchema>::schema());
    api.security = Some(vec![SecurityRequirement::new(SECURITY, Vec::<String>::new())]);
    for item in api.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            shared_responses(op);
        }
    }
}

fn error_json(description: &str) -> RefOr<ApiResponse> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
            )
            .build(),
    )
}

fn plain(description: &str) -> RefOr<ApiResponse> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "text/plain",
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            )
            .build(),
    )
}

/// What any admin route may answer besides its own responses.
fn shared_responses(op: &mut Operation) {
    let r = &mut op.responses.responses;
    r.entry("401".into()).or_insert_with(|| {
        error_json("admin_listen only: the Authorization header is missing or carries a wrong admin token.")
    });
    r.entry("429".into()).or_insert_with(|| {
        let mut resp = error_json(
            "admin_listen only: too many wrong admin tokens from this address (10 a minute); \
             every request from it is refused for 5 minutes, the right token included. \
             Retry-After says how many seconds are left.",
        );
        if let RefOr::T(resp) = &mut resp {
            resp.headers.insert(
                "Retry-After".into(),
                utoipa::openapi::HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("Seconds until the lockout ends."))
                    .build(),
            );
        }
        resp
    });
    r.entry("500".into())
        .or_insert_with(|| error_json("The database failed; the sentence names it."));
    if op.request_body.is_some() {
        r.entry("408".into())
            .or_insert_with(|| plain("The body took longer than 30 seconds to arrive."));
        r.entry("413".into())
            .or_insert_with(|| plain("The body is larger than 1 MiB."));
    }
}

/// The OpenAPI document of the admin API (this document).
#[utoipa::path(
    get,
    path = "/admin/v1/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of every admin route, as in docs/openapi.json.",
         content_type = "application/json", body = Object),
    )
)]
pub async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json()).into_response()
}
