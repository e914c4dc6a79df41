//! Who calls the test's service and how: users, their signed tokens, and
//! gRPC clients of the test's server (or of a second replica of it). The
//! calls themselves are in `calls`.

use passare_imports_cli::client::{self, Client};

use crate::service::{self, Claims};
use crate::test_env::TestEnv;

/// A user for tokens.
pub struct User<'a> {
    pub id: &'a str,
    pub super_admin: bool,
    pub developer: bool,
    /// The organization of a user who is neither super admin nor developer.
    pub org: Option<i64>,
}

pub const ADMIN: User<'static> = User {
    id: "admin-1",
    super_admin: true,
    developer: false,
    org: None,
};

/// A Passare developer (the `developer` claim, without super admin).
pub const DEVELOPER: User<'static> = User {
    id: "dev-1",
    super_admin: false,
    developer: true,
    org: None,
};

/// A user of organization 1042 who is neither super admin nor developer.
pub const MEMBER: User<'static> = User {
    id: "member-1",
    super_admin: false,
    developer: false,
    org: Some(1042),
};

/// Seconds since the epoch, as token claims count time.
pub fn epoch_now() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

impl TestEnv {
    /// A token of `user`, valid for an hour.
    pub fn token(&self, user: &User<'_>) -> String {
        self.token_with(user, epoch_now() + 3600)
    }

    /// A token of `user` expiring at `exp` (seconds since the epoch).
    pub fn token_with(&self, user: &User<'_>, exp: u64) -> String {
        self.signed(&Claims {
            sub: user.id.into(),
            name: format!("User {}", user.id),
            email: format!("{}@passare.com", user.id),
            super_admin: user.super_admin,
            developer: user.developer,
            org: user.org,
            exp,
            ..Claims::default()
        })
        .unwrap_or_default()
    }

    /// A token with exactly `claims`, signed with this test's secret.
    pub fn signed(&self, claims: &Claims) -> anyhow::Result<String> {
        service::sign(&self.config.jwt_secret, claims)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// A super admin's client.
    pub async fn client(&self) -> anyhow::Result<Client> {
        self.client_as(&ADMIN).await
    }

    /// A client calling as `user`.
    pub async fn client_as(&self, user: &User<'_>) -> anyhow::Result<Client> {
        client::connect(&self.url(), &self.token(user)).await
    }

    /// A client sending `token` as it is.
    pub async fn client_with_token(&self, token: &str) -> anyhow::Result<Client> {
        client::connect(&self.url(), token).await
    }

    /// A super admin's client of a second server replica of this test's
    /// service (its own database pool and change listener).
    pub async fn second_replica(&self) -> anyhow::Result<Client> {
        let addr = service::serve_grpc(&self.config, &self.shutdown).await?;
        client::connect(&format!("http://{addr}"), &self.token(&ADMIN)).await
    }

    /// Serves this test's service through the grpc-web gateway as well;
    /// returns the gateway's address.
    pub async fn grpc_web_gateway(&self) -> anyhow::Result<std::net::SocketAddr> {
        service::serve_grpc_web(&self.config, &self.shutdown).await
    }
}
