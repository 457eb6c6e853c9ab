//! End-to-end tests: the real `mediagate` binary, a real RabbitMQ and a real S3 server.
//! See `support` for the harness. Run with `make test`.

mod support;

mod av;
mod banks;
mod cli;
mod doctor;
mod erase;
mod inspect;
mod least_privilege;
mod malformed;
mod monitoring;
mod nudity;
mod ops;
mod phones;
mod photos;
mod reprocess;
mod review;
mod rules;
mod sandbox;
mod schemas;
mod shutdown;
mod topology;
