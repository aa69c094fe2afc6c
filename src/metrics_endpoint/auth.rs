//! Who may read `/metrics`, decided by the API server as controller-runtime's
//! `WithAuthenticationAndAuthorization` does: a TokenReview authenticates the bearer token, then a
//! SubjectAccessReview asks whether its user may `get` the non-resource URL `/metrics`. The token
//! is never logged and never kept: the cache holds its digest.

use std::time::Instant;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::decision_cache::{Access, DecisionCache, digest};

/// Decisions remembered at most; enough for every scraper, small whatever callers send.
const CACHE_CAPACITY: usize = 1024;

pub struct MetricsAuth {
    client: kube::Client,
    cache: DecisionCache,
}

impl MetricsAuth {
    pub fn new(client: kube::Client) -> MetricsAuth {
        MetricsAuth {
            client,
            cache: DecisionCache::new(CACHE_CAPACITY),
        }
    }

    /// Whether the caller presenting `token` may read `path`. An error is the API server's, and
    /// is not remembered.
    pub async fn check(&self, token: &str, path: &str) -> Result<Access, kube::Error> {
        let key = digest(token);
        if let Some(access) = self.cache.get(&key, Instant::now()) {
            return Ok(access);
        }
        let access = match self.authenticate(token).await? {
            None => Access::Unauthenticated,
            Some(user) => {
                if self.authorize(user, path).await? {
                    Access::Allowed
                } else {
                    Access::Forbidden
                }
            }
        };
        self.cache.insert(key, access, Instant::now());
        Ok(access)
    }

    /// The user the token stands for, when the API server accepts it (for its own audiences).
    async fn authenticate(&self, token: &str) -> Result<Option<UserInfo>, kube::Error> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        Ok(reviewed
            .status
            .filter(|status| status.authenticated == Some(true))
            .and_then(|status| status.user))
    }

    async fn authorize(&self, user: UserInfo, path: &str) -> Result<bool, kube::Error> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_owned()),
                    verb: Some("get".to_owned()),
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviewed = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        Ok(reviewed.status.is_some_and(|status| status.allowed))
    }
}
