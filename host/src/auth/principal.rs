//! The authenticated caller of a request, and what each kind of caller may do.

use uuid::Uuid;

use crate::error::{Error, ErrorCode};

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An administrator.
    Admin {
        /// The token's subject.
        subject: String,
    },
    /// An endpoint's agent or CLI.
    Endpoint {
        /// Which endpoint.
        endpoint_id: Uuid,
    },
}

impl Principal {
    /// The actor name recorded in the audit log and on operations.
    pub fn actor(&self) -> String {
        match self {
            Principal::Admin { subject } => format!("admin:{subject}"),
            Principal::Endpoint { endpoint_id } => format!("endpoint:{endpoint_id}"),
        }
    }

    /// Admin-only routes.
    pub fn require_admin(&self) -> Result<(), Error> {
        match self {
            Principal::Admin { .. } => Ok(()),
            Principal::Endpoint { .. } => Err(Error::new(
                ErrorCode::AdminRequired,
                "this route needs an admin token",
            )),
        }
    }

    /// Routes open to admins and to the endpoint itself.
    pub fn require_admin_or_endpoint(&self, endpoint_id: Uuid) -> Result<(), Error> {
        match self {
            Principal::Admin { .. } => Ok(()),
            Principal::Endpoint { endpoint_id: own } if *own == endpoint_id => Ok(()),
            Principal::Endpoint { .. } => Err(not_yours()),
        }
    }

    /// Routes only the endpoint's own agent may call.
    pub fn require_endpoint(&self, endpoint_id: Uuid) -> Result<(), Error> {
        match self {
            Principal::Endpoint { endpoint_id: own } if *own == endpoint_id => Ok(()),
            Principal::Endpoint { .. } => Err(not_yours()),
            Principal::Admin { .. } => Err(Error::new(
                ErrorCode::EndpointRequired,
                "this route is for the endpoint's own agent; admins cannot call it",
            )),
        }
    }
}

fn not_yours() -> Error {
    Error::new(
        ErrorCode::NotYourEndpoint,
        "an endpoint token may act only on its own endpoint",
    )
}
