pub mod vhost;
