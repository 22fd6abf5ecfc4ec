//! The OpenAPI document: every route's description, collected from the handlers' `utoipa::path`
//! attributes, plus what every route shares and is declared once here: the bearer scheme, and
//! the problem responses (`application/problem+json`, a 4XX for a refused request and a 5XX
//! when the database is unavailable or the request timed out) that any route can answer.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use super::{admin_tokens, endpoints, health, plugins, pools, stream, sync};

/// The media type of every error response.
const PROBLEM: &str = "application/problem+json";

/// The OpenAPI description of every route.
#[derive(OpenApi)]
#[openapi(
    info(title = "pacsync host API", description = "Keeps the pacman package state of pools of Arch Linux machines in sync."),
    paths(
        pools::create, pools::list, pools::get, pools::update, pools::delete, pools::status, pools::target,
        pools::create_enrollment_token, pools::repository_analysis,
        pools::restore_target, pools::targets, pools::list_enrollment_tokens, pools::revoke_enrollment_token,
        endpoints::set_permissions,
        endpoints::register, endpoints::list, endpoints::get, endpoints::delete, endpoints::move_to_pool,
        endpoints::report_state, endpoints::history, endpoints::diff,
        sync::sync_to_latest, sync::set_as_latest, sync::revert, sync::get_operation, sync::cancel,
        sync::endpoint_operations, sync::pool_operations, sync::health,
        stream::endpoint_status, stream::pool_events, crate::metrics::render,
        sync::start, sync::progress, sync::complete, sync::fail, sync::cancel_ack,
        plugins::upload, plugins::list, plugins::get, plugins::delete, plugins::set_pool_policy,
        admin_tokens::list, admin_tokens::revoke, health::live, health::ready,
    ),
    modifiers(&BearerAuth, &ProblemResponses),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document as pretty JSON (also committed as `openapi.json`).
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
}

pub(super) async fn serve() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi_json(),
    )
}

/// Every error response is a problem document, whose media type is `application/problem+json`;
/// and every route can answer one: 429 past the rate, 401 or 403 for a missing or wrong token,
/// 400 for a malformed request, 503 when the database is unavailable or the request timed out.
struct ProblemResponses;

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(response) = response
                        && (status.starts_with('4') || status.starts_with('5'))
                        && let Some(json) = response.content.get("application/json")
                        && is_problem(json)
                    {
                        let json = response.content.shift_remove("application/json");
                        response
                            .content
                            .insert(PROBLEM.to_owned(), json.expect("present"));
                    }
                }
                for (status, what) in [
                    (
                        "4XX",
                        "The request was refused; the problem's `code` says why.",
                    ),
                    (
                        "5XX",
                        "The host could not answer: `DATABASE_UNAVAILABLE`, `REQUEST_TIMEOUT` or `INTERNAL`.",
                    ),
                ] {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem(what));
                }
            }
        }
    }
}

fn is_problem(content: &utoipa::openapi::Content) -> bool {
    matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"))
}

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(PROBLEM, content)
            .build(),
    )
}
