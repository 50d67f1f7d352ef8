//! Start-up wiring of the verification service: the database the server
//! opened becomes the service's storage, the participants declared in the
//! config file are written to it, and the policy and channel order come
//! from the configuration. It lives in the shell because the service
//! (`crate::verify`) knows neither the configuration file nor SQLite.

use std::sync::Arc;

use crate::config::otp::OtpSettings;
use crate::store::{Store, StoreError, StoreHandle, SyncReport};
use crate::verify::clock::Clock;
use crate::verify::directory::DirectoryError;
use crate::verify::key::ServerKey;
use crate::verify::otp::{Policy, PolicyError};
use crate::verify::sender::CodeSender;
use crate::verify::service::VerifyService;

/// Why the verification service could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("config participants: {0}")]
    Participants(#[from] DirectoryError),
    #[error("[verify]: {0}")]
    Policy(#[from] PolicyError),
}

/// The verification service on a database and key already opened (the
/// server opens them once and shares them with the brute-force guard):
/// writes the participants declared in the config, moves the database onto
/// its thread, and returns the service, the handle to that thread and what
/// the participant sync changed. Blocking (database writes): call it from
/// `spawn_blocking`.
pub fn verify_service(
    settings: &OtpSettings,
    mut store: Store,
    key: ServerKey,
    sender: Arc<dyn CodeSender>,
    clock: Arc<dyn Clock>,
) -> Result<(VerifyService, StoreHandle, SyncReport), SetupError> {
    let report = store.sync_config_participants(&settings.participants, clock.now_ms())?;
    let policy = Policy::from_settings(&settings.verify)?;
    let handle = StoreHandle::spawn(store)?;
    let service = VerifyService::new(
        handle.clone(),
        key,
        policy,
        settings.channel_policy(),
        sender,
        clock,
    )?;
    Ok((service, handle, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::channel::ChannelKind;
    use crate::verify::directory::Source;
    use crate::verify::key::load_or_create_key;
    use crate::verify::sender::RecordingSender;
    use crate::verify::service::{Channels, CheckBy, Target};

    /// What a call that reaches every conference of these tests may redeem.
    fn all_conferences() -> Vec<String> {
        vec!["board".into()]
    }

    #[tokio::test]
    async fn setup_from_config_and_redeem_a_dialin_code() {
        let dir = crate::store::test_util::temp_dir("service-setup");
        let toml = format!(
            r#"
[store]
path = "{d}/p.db"
[verify]
key_file = "{d}/p.key"
[delivery.log]
enabled = true
[[conference]]
name = "board"
numbers = ["100"]
pin = "1234"
flow = "pin+otp"
[[participant]]
name = "Alice"
username = "alice"
phone = "+12015550123"
conferences = ["board"]
"#,
            d = dir.display()
        );
        let config = crate::config::Config::parse(&toml, "t.toml", &dir).unwrap();
        let sender = Arc::new(RecordingSender::new());
        let clock = Arc::new(crate::verify::clock::ManualClock::new(1_700_000_000_000));
        let store = Store::open(&config.otp.store.path).unwrap();
        let key = load_or_create_key(&config.otp.verify.key_file).unwrap();
        let (svc, _handle, report) =
            verify_service(&config.otp, store, key, sender.clone(), clock.clone()).unwrap();
        assert_eq!(report.added, 1);
        let alice = svc
            .participant_by_username("alice".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(alice.source, Source::Config);

        // The IVR's path: start for a participant with the conference's
        // channels, check by id.
        let out = svc
            .start(
                Target::Participant(Box::new(alice.clone())),
                Channels::default(),
            )
            .await
            .unwrap();
        assert_eq!(out.delivered_via, ChannelKind::Log);
        let code = sender.last_code(&out.verification.id).unwrap();
        let c = svc
            .check(CheckBy::Id(out.verification.id.clone()), code)
            .await
            .unwrap();
        assert!(c.valid);

        // The join page's path: a dial-in code, redeemed once.
        let (dialin, _) = svc
            .issue_dialin(alice.id, "board".into(), 300_000)
            .await
            .unwrap();
        let (r, p) = svc
            .redeem_dialin(dialin.expose().to_string(), all_conferences())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((r.conference.as_str(), p.id), ("board", alice.id));
        assert!(svc
            .redeem_dialin(dialin.expose().to_string(), all_conferences())
            .await
            .unwrap()
            .is_none());
    }
}
