//! The user agent's tests by topic, each file named after the file under
//! `sip/ua/` whose job it tests (`uac_*` for the parts of `uac.rs`). They
//! drive the whole core with byte strings on a fake clock; the helpers are
//! in `test_support`.

mod bye_cancel;
mod call;
mod client_tx;
mod flood;
mod info;
mod invite;
mod options;
mod reply;
mod session_timer;
mod uac_call;
mod uac_digest;
mod uac_message;
mod uac_register;
mod validate;
