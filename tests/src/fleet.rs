//! Fleets: a pool with a reference endpoint whose state is the target, and members behind
//! it, built the same way by every test that needs one.

use serde_json::Value;

use crate::api::Api;

/// An endpoint registered by a [`Fleet`].
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The name it registered with.
    pub name: String,
    /// Its `endpoint_id`.
    pub id: String,
    /// Its access token.
    pub token: String,
}

/// A pool whose target is a reference endpoint's reported state, and the other endpoints
/// registered in it. Made by [`Fleet::builder`].
#[derive(Clone, Debug)]
pub struct Fleet {
    /// The pool's `pool_id`.
    pub pool: String,
    /// The endpoint whose state is the pool's target.
    pub reference: Endpoint,
    /// The other endpoints, in the order they were added to the builder.
    pub members: Vec<Endpoint>,
    /// The body of the set-as-latest reply (`202`) that made the reference's state the target.
    pub set_latest: Value,
}

impl Fleet {
    /// A builder for a fleet set up through `api`.
    pub fn builder(api: &Api) -> FleetBuilder<'_> {
        FleetBuilder {
            api,
            pool: "fleet".to_owned(),
            reference: None,
            members: Vec::new(),
            latest_by_admin: false,
        }
    }
}

/// Builds a [`Fleet`]. [`FleetBuilder::build`] creates the pool, registers the reference and
/// then each member, reports the reference's state and makes it the target (set-as-latest),
/// then reports each member's state, in the order the members were added. Every step must
/// succeed.
pub struct FleetBuilder<'a> {
    api: &'a Api,
    pool: String,
    reference: Option<(String, Value)>,
    members: Vec<(String, Option<Value>)>,
    latest_by_admin: bool,
}

impl FleetBuilder<'_> {
    /// The pool's name (`fleet` unless set).
    pub fn pool(mut self, name: &str) -> Self {
        self.pool = name.to_owned();
        self
    }

    /// The reference endpoint `name`, which reports the state report `state` (e.g. from
    /// [`state`]); that state becomes the pool's target.
    pub fn reference(mut self, name: &str, state: Value) -> Self {
        self.reference = Some((name.to_owned(), state));
        self
    }

    /// A member endpoint `name` that reports the state report `state` once the target is set.
    pub fn member(mut self, name: &str, state: Value) -> Self {
        self.members.push((name.to_owned(), Some(state)));
        self
    }

    /// A member endpoint `name` that is registered and reports nothing.
    pub fn unreported(mut self, name: &str) -> Self {
        self.members.push((name.to_owned(), None));
        self
    }

    /// Set-as-latest is requested with the admin token instead of the reference's own.
    pub fn latest_set_by_admin(mut self) -> Self {
        self.latest_by_admin = true;
        self
    }

    /// Sets the fleet up; panics if any step fails or no reference was given.
    pub async fn build(self) -> Fleet {
        let FleetBuilder {
            api,
            pool: pool_name,
            reference,
            members: wanted,
            latest_by_admin,
        } = self;
        let (reference_name, reference_state) =
            reference.expect("a fleet needs a reference endpoint");
        let pool = api.create_pool(&pool_name).await;
        let reference = enroll(api, &pool, reference_name).await;
        let mut members = Vec::with_capacity(wanted.len());
        let mut states = Vec::with_capacity(wanted.len());
        for (name, state) in wanted {
            members.push(enroll(api, &pool, name).await);
            states.push(state);
        }
        api.put_state(&reference.id, &reference.token, reference_state)
            .await
            .expect(200, None);
        let token = if latest_by_admin {
            &api.admin
        } else {
            &reference.token
        };
        let set_latest = api
            .set_as_latest(&reference.id, token)
            .await
            .expect(202, None)
            .clone();
        for (member, state) in members.iter().zip(states) {
            if let Some(state) = state {
                api.put_state(&member.id, &member.token, state)
                    .await
                    .expect(200, None);
            }
        }
        Fleet {
            pool,
            reference,
            members,
            set_latest,
        }
    }
}

/// Registers `name` into `pool`.
async fn enroll(api: &Api, pool: &str, name: String) -> Endpoint {
    let (id, token) = api.register(pool, &name).await;
    Endpoint { name, id, token }
}
