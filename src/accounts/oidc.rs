//! "Đăng nhập bằng Google / Microsoft": the OpenID Connect relying party.
//!
//! Authorization code flow with PKCE (S256), a random `state` and `nonce` kept in the
//! signed session cookie until the provider sends the browser back. The callback
//! checks the state (constant time), exchanges the code with the PKCE verifier, and
//! verifies the ID token (signature from the provider's JWKS, issuer, audience,
//! expiry, nonce) with the `openidconnect` crate. Provider metadata comes from
//! discovery and is kept for a few minutes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};

use super::merchant::OidcIdentity;
use crate::config::{Config, OidcProvider};

/// How long discovered metadata (endpoints and signing keys) is reused.
const METADATA_TTL: Duration = Duration::from_secs(300);
/// A sign-in that takes longer than this at the provider starts over.
pub const PENDING_TTL_SECS: i64 = 600;

/// What the session remembers between the redirect and the callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub provider: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub next: String,
    pub started: i64,
}

/// Why a sign-in through a provider failed; every case is shown to the person in
/// Vietnamese and logged with its cause.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("Nhà cung cấp đăng nhập tạm thời không phản hồi. Vui lòng thử lại sau ít phút.")]
    Unreachable(String),
    #[error("Phiên đăng nhập không hợp lệ hoặc đã hết hạn. Vui lòng bấm đăng nhập lại.")]
    BadState,
    #[error("Đăng nhập không thành công: mã xác thực không hợp lệ hoặc đã hết hạn. Vui lòng thử lại.")]
    Exchange(String),
    #[error("Đăng nhập không thành công: thông tin xác thực từ nhà cung cấp không hợp lệ.")]
    IdToken(String),
    #[error("Bạn đã hủy đăng nhập hoặc nhà cung cấp từ chối: {0}")]
    Denied(String),
}

/// The HTTP client and the metadata cache shared by every request of a process.
pub struct OidcClients {
    http: openidconnect::reqwest::Client,
    metadata: Mutex<HashMap<String, (Instant, CoreProviderMetadata)>>,
}

impl OidcClients {
    pub fn new() -> anyhow::Result<Self> {
        // Redirects are never followed: the crate's own advice against SSRF.
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self { http, metadata: Mutex::new(HashMap::new()) })
    }

    async fn metadata(&self, provider: &OidcProvider) -> Result<CoreProviderMetadata, OidcError> {
        if let Ok(cache) = self.metadata.lock()
            && let Some((at, meta)) = cache.get(provider.key)
            && at.elapsed() < METADATA_TTL
        {
            return Ok(meta.clone());
        }
        let issuer = IssuerUrl::new(provider.issuer.clone()).map_err(|e| OidcError::Unreachable(e.to_string()))?;
        let meta = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Unreachable(format!("discovery: {e:?}")))?;
        if let Ok(mut cache) = self.metadata.lock() {
            cache.insert(provider.key.to_string(), (Instant::now(), meta.clone()));
        }
        Ok(meta)
    }

    fn redirect_url(config: &Config, provider: &OidcProvider) -> Result<RedirectUrl, OidcError> {
        RedirectUrl::new(format!("{}/auth/{}/callback", config.base_url, provider.key))
            .map_err(|e| OidcError::Unreachable(e.to_string()))
    }

    /// The provider's authorization URL, and what the session must remember.
    pub async fn start(
        &self,
        config: &Config,
        provider: &OidcProvider,
        next: &str,
    ) -> Result<(String, Pending), OidcError> {
        let meta = self.metadata(provider).await?;
        let client = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(provider.client_id.clone()),
            Some(ClientSecret::new(provider.client_secret.clone())),
        )
        .set_redirect_uri(Self::redirect_url(config, provider)?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        let pending = Pending {
            provider: provider.key.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            next: next.to_string(),
            started: chrono::Utc::now().timestamp(),
        };
        Ok((url.to_string(), pending))
    }

    /// Checks the callback against the pending sign-in and returns the verified identity.
    pub async fn finish(
        &self,
        config: &Config,
        provider: &OidcProvider,
        pending: Option<Pending>,
        state: &str,
        code: &str,
    ) -> Result<OidcIdentity, OidcError> {
        let pending = pending.ok_or(OidcError::BadState)?;
        let fresh = chrono::Utc::now().timestamp() - pending.started <= PENDING_TTL_SECS;
        if pending.provider != provider.key
            || !fresh
            || !bool::from(subtle::ConstantTimeEq::ct_eq(pending.state.as_bytes(), state.as_bytes()))
        {
            return Err(OidcError::BadState);
        }
        let meta = self.metadata(provider).await?;
        let client = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(provider.client_id.clone()),
            Some(ClientSecret::new(provider.client_secret.clone())),
        )
        .set_redirect_uri(Self::redirect_url(config, provider)?);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Exchange(format!("configuration: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(format!("{e:?}")))?;
        let id_token = response.id_token().ok_or_else(|| OidcError::IdToken("no id_token in the response".into()))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(pending.nonce.clone()))
            .map_err(|e| OidcError::IdToken(e.to_string()))?;
        Ok(OidcIdentity {
            provider: provider.key.to_string(),
            subject: claims.subject().as_str().to_string(),
            email: claims.email().map(|e| e.as_str().to_string()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string()),
        })
    }
}
