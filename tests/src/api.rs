//! A small HTTP client for the host's API: `api.as_(token).post(path).json(body).await`
//! gives a [`Reply`] whose assertions name the status and body on failure.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A JSON response.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Parsed body (`Null` when empty).
    pub body: Value,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// The problem `code`, if the body is a problem document.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Asserts status and, for errors, the problem content type and code.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        if let Some(code) = code {
            assert_eq!(
                self.code(),
                code,
                "unexpected problem code; body: {}",
                self.body
            );
            let content_type = self
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert_eq!(content_type, "application/problem+json");
        }
        &self.body
    }
}

/// A small HTTP client for the host API.
///
/// A request names who sends it, then the method and path, and is sent when awaited:
/// `api.as_(&token).post(path).await`, `api.anonymous().get(path).await`, and with the admin
/// token simply `api.get(path).await`. [`Request::json`] adds a JSON body and
/// [`Request::header`] a header; every request resolves to a [`Reply`].
#[derive(Clone)]
pub struct Api {
    /// `http://addr`.
    pub base: String,
    /// Admin bearer token.
    pub admin: String,
    client: reqwest::Client,
}

impl Api {
    /// Client for `base` with an admin token.
    pub fn new(base: String, admin: String) -> Self {
        Self::with_timeout(base, admin, Duration::from_secs(30))
    }

    /// Like [`Api::new`], with requests given `timeout` instead of 30 s (for benchmarks whose
    /// requests queue behind each other by design).
    pub fn with_timeout(base: String, admin: String, timeout: Duration) -> Self {
        let client = reqwest::Client::builder().timeout(timeout).build().unwrap();
        Self {
            base,
            admin,
            client,
        }
    }

    /// Client for an HTTPS `base` whose certificate is issued by the PEM CA `ca`.
    pub fn with_ca(base: String, admin: String, ca: &[u8]) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .add_root_certificate(reqwest::Certificate::from_pem(ca).expect("CA PEM"))
            .build()
            .unwrap();
        Self {
            base,
            admin,
            client,
        }
    }

    /// Requests sent with `token` as their bearer token.
    pub fn as_(&self, token: &str) -> Caller<'_> {
        Caller {
            api: self,
            token: Some(token.to_owned()),
        }
    }

    /// Requests sent without a token.
    pub fn anonymous(&self) -> Caller<'_> {
        Caller {
            api: self,
            token: None,
        }
    }

    /// `GET path` with the admin token.
    pub fn get(&self, path: &str) -> Request<'_> {
        self.as_(&self.admin).get(path)
    }

    /// `POST path` with the admin token.
    pub fn post(&self, path: &str) -> Request<'_> {
        self.as_(&self.admin).post(path)
    }

    /// `PUT path` with the admin token.
    pub fn put(&self, path: &str) -> Request<'_> {
        self.as_(&self.admin).put(path)
    }

    /// `PATCH path` with the admin token.
    pub fn patch(&self, path: &str) -> Request<'_> {
        self.as_(&self.admin).patch(path)
    }

    /// `DELETE path` with the admin token.
    pub fn delete(&self, path: &str) -> Request<'_> {
        self.as_(&self.admin).delete(path)
    }

    /// `POST /api/sync/{endpoint_id}/set-as-latest` with `token`.
    pub async fn set_as_latest(&self, endpoint_id: &str, token: &str) -> Reply {
        self.as_(token)
            .post(&format!("/api/sync/{endpoint_id}/set-as-latest"))
            .await
    }

    /// Creates a pool and returns its id.
    pub async fn create_pool(&self, name: &str) -> String {
        let reply = self.post("/api/pools").json(json!({ "name": name })).await;
        reply.expect(201, None)["pool_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates an enrollment token for a pool.
    pub async fn enrollment_token(&self, pool_id: &str) -> String {
        let reply = self
            .post(&format!("/api/pools/{pool_id}/enrollment-tokens"))
            .json(json!({}))
            .await;
        reply.expect(201, None)["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Registers an endpoint into a pool: `(endpoint_id, token)`.
    pub async fn register(&self, pool_id: &str, name: &str) -> (String, String) {
        let token = self.enrollment_token(pool_id).await;
        let reply = self
            .anonymous()
            .post("/api/endpoints/register")
            .json(json!({ "name": name, "hostname": format!("{name}.example"), "enrollment_token": token }))
            .await;
        let body = reply.expect(201, None);
        (
            body["endpoint"]["endpoint_id"].as_str().unwrap().to_owned(),
            body["access_token"].as_str().unwrap().to_owned(),
        )
    }

    /// Reports `packages` (`(name, version)`, explicit) as the endpoint's state.
    pub async fn report(&self, endpoint_id: &str, token: &str, packages: &[(&str, &str)]) -> Reply {
        self.put_state(endpoint_id, token, state(packages)).await
    }

    /// `PUT /api/endpoints/{endpoint_id}/state` with `token` and the report `body`.
    pub async fn put_state(&self, endpoint_id: &str, token: &str, body: Value) -> Reply {
        self.as_(token)
            .put(&format!("/api/endpoints/{endpoint_id}/state"))
            .json(body)
            .await
    }
}

/// Who requests are sent as: a bearer token, or none. Made by [`Api::as_`] and
/// [`Api::anonymous`].
#[derive(Clone)]
pub struct Caller<'a> {
    api: &'a Api,
    token: Option<String>,
}

impl<'a> Caller<'a> {
    /// A `method` request for `path` (relative to the API's base).
    pub fn request(&self, method: Method, path: &str) -> Request<'a> {
        Request {
            api: self.api,
            method,
            path: path.to_owned(),
            token: self.token.clone(),
            body: None,
            headers: Vec::new(),
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Request<'a> {
        self.request(Method::GET, path)
    }

    /// `POST path`.
    pub fn post(&self, path: &str) -> Request<'a> {
        self.request(Method::POST, path)
    }

    /// `PUT path`.
    pub fn put(&self, path: &str) -> Request<'a> {
        self.request(Method::PUT, path)
    }

    /// `PATCH path`.
    pub fn patch(&self, path: &str) -> Request<'a> {
        self.request(Method::PATCH, path)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Request<'a> {
        self.request(Method::DELETE, path)
    }
}

/// One request to the host, sent when awaited (or by [`Request::send`]); it resolves to the
/// [`Reply`], whatever its status.
#[must_use = "a request is sent only when awaited"]
pub struct Request<'a> {
    api: &'a Api,
    method: Method,
    path: String,
    token: Option<String>,
    body: Option<Value>,
    headers: Vec<(String, String)>,
}

impl Request<'_> {
    /// Sends `body` as the JSON request body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Adds the header `name: value` (e.g. `Idempotency-Key`).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends the request and reads the reply; the body is parsed as JSON when it is JSON, kept
    /// as a string otherwise, and `Null` when empty.
    pub async fn send(self) -> Reply {
        let mut request = self
            .api
            .client
            .request(self.method, format!("{}{}", self.api.base, self.path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = &self.body {
            request = request.json(body);
        }
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.expect("request reaches the host");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("response body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            body,
            headers,
        }
    }
}

impl<'a> std::future::IntoFuture for Request<'a> {
    type Output = Reply;
    type IntoFuture = futures_util::future::BoxFuture<'a, Reply>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A state report body for `(name, version)` pairs, all explicitly installed from `core`.
pub fn state(packages: &[(&str, &str)]) -> Value {
    json!({
        "architecture": "x86_64",
        "pacman_version": "6.0.2",
        "packages": packages.iter().map(|(name, version)| json!({
            "name": name, "version": version, "repository": "core", "architecture": "x86_64", "reason": "explicit"
        })).collect::<Vec<_>>(),
    })
}
