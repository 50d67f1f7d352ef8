//! Media core: codecs, RTP state, prompts, DTMF and mixing. No I/O here.

pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod mixer;
pub mod pcap;
pub mod player;
pub mod prompt;
pub mod resample;
pub mod rtp;
