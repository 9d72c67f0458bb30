//! The authorizer of the tests that embed a node: a token names its user,
//! and one fixed API key opens the HTTP API.

use tether_core::{Authorizer, Identity};

/// The one token [`TestAuthorizer`] refuses.
pub const REFUSED_TOKEN: &str = "bad";

/// The API key [`TestAuthorizer`] accepts.
pub const API_KEY: &str = "test-api-key";

/// The `Authorization` header value that carries [`API_KEY`].
pub const AUTHORIZATION: &str = "Bearer test-api-key";

/// Every token is its own user id, except [`REFUSED_TOKEN`]; the HTTP API
/// takes [`AUTHORIZATION`] and nothing else.
#[derive(Clone, Copy, Debug, Default)]
pub struct TestAuthorizer;

impl Authorizer for TestAuthorizer {
    fn authenticate(&self, token: &str) -> Option<Identity> {
        (token != REFUSED_TOKEN).then(|| Identity::user(token))
    }

    fn authorize_api(&self, authorization: Option<&str>) -> bool {
        authorization == Some(AUTHORIZATION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_user_and_only_the_key_opens_the_api() {
        assert_eq!(
            TestAuthorizer.authenticate("ann"),
            Some(Identity::user("ann"))
        );
        assert_eq!(TestAuthorizer.authenticate(REFUSED_TOKEN), None);
        assert_eq!(AUTHORIZATION, format!("Bearer {API_KEY}"));
        assert!(TestAuthorizer.authorize_api(Some(AUTHORIZATION)));
        assert!(!TestAuthorizer.authorize_api(Some(API_KEY)));
        assert!(!TestAuthorizer.authorize_api(None));
    }
}
