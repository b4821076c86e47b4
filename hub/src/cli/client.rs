//! The hub's API as the operator commands (`hub status`, `hub dlq`, `hub rebuild`) use it.

use serde::{de::DeserializeOwned, Serialize};

/// Why a call to the hub's API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer → is the hub running at this address (`--api`, `HUB_API_URL`)?
    #[error("no answer from the hub at {url}: {source} (is it running? set --api or HUB_API_URL)")]
    Unreachable {
        /// The URL.
        url: String,
        /// What went wrong.
        source: reqwest::Error,
    },
    /// The hub answered with an error.
    #[error("the hub answered {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error code (`unauthorized`, `forbidden`, …).
        code: String,
        /// Its message.
        message: String,
    },
    /// The answer was not what this version of `hub` expects.
    #[error("unexpected answer from {url}: {source}")]
    Answer {
        /// The URL.
        url: String,
        /// What did not parse.
        source: serde_json::Error,
    },
}

/// A client of one hub with an operator token.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client of the hub at `base` (e.g. `http://127.0.0.1:8080`) with `token`.
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// `GET path` as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let response = self.http.get(&url).bearer_auth(&self.token).send().await;
        self.answer(url, response).await
    }

    /// `POST path` with a JSON body, as JSON.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let response = self.http.post(&url).bearer_auth(&self.token).json(body).send().await;
        self.answer(url, response).await
    }

    /// `DELETE path`; Ok on any 2xx.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        let url = format!("{}{path}", self.base);
        let response = self.http.delete(&url).bearer_auth(&self.token).send().await;
        if response.as_ref().is_ok_and(|r| r.status() == reqwest::StatusCode::NO_CONTENT) {
            return Ok(());
        }
        self.answer::<serde_json::Value>(url, response).await.map(drop)
    }

    async fn answer<T: DeserializeOwned>(
        &self,
        url: String,
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, ClientError> {
        let response = response.map_err(|e| ClientError::Unreachable { url: url.clone(), source: e })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| ClientError::Unreachable { url: url.clone(), source: e })?;
        if !status.is_success() {
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let text = |key: &str| error.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            return Err(ClientError::Api {
                status: status.as_u16(),
                code: text("error"),
                message: match text("message") {
                    m if m.is_empty() => String::from_utf8_lossy(&body).chars().take(300).collect(),
                    m => m,
                },
            });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Answer { url, source: e })
    }
}
