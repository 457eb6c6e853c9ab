//! `mediagate ensure-topology` (contract §7), and the check of §1's bindings that `doctor` makes
//! through RabbitMQ's management API (AMQP 0-9-1 has no way to list bindings).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use mediagate_queue::{binding_name, contract_bindings, Broker, ManagementApi, ManagementClient};

use crate::cli::Common;

/// `mediagate ensure-topology`: declares every exchange, queue and binding of §1 with its exact
/// arguments, one line each, and exits: 0 when all are in place, 1 when the broker refused one
/// (named, with the broker's words). Consumes nothing, publishes nothing.
pub async fn ensure(common: &Common) -> Result<ExitCode> {
    let broker = Broker::connect_any(&common.amqp_url, None, "mediagate ensure-topology")
        .await
        .context("connecting to RabbitMQ (MEDIAGATE_AMQP_URL)")?;
    let done = broker.declare_topology_each().await.context("declaring the topology")?;
    broker.close().await;
    let mut refused = 0;
    for (name, result) in &done {
        match result {
            Ok(()) => println!("✔ {name}"),
            Err(e) => {
                refused += 1;
                println!("✘ {name}: {e}");
                if e.is_precondition_failed() {
                    println!(
                        "    fix: it exists with other arguments than contract §1's; a queue cannot be changed in \
                         place: drain it, delete it, and run ensure-topology again"
                    );
                }
            }
        }
    }
    if refused == 0 {
        println!("topology in place: {} declarations", done.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{refused} of {} declarations refused", done.len());
        Ok(ExitCode::FAILURE)
    }
}

/// How one §1 binding stands, as the management API tells it.
#[derive(Debug, PartialEq, Eq)]
pub enum BindingFound {
    /// The binding exists.
    Present,
    /// The queue and exchange exist, the binding does not: producers' jobs are returned.
    Missing,
    /// The exchange or the queue does not exist (reported by its own check).
    NoEndpoint,
}

/// Each §1 binding's state, or why the management API could not tell (unreachable, refused
/// the user, not the plugin).
pub async fn inspect_bindings(api: &ManagementApi) -> Result<Vec<(String, BindingFound)>, String> {
    let client = ManagementClient::default();
    let mut found = Vec::new();
    for (queue, exchange, key) in contract_bindings() {
        let path = api.bindings_path(exchange, queue);
        let answer = client.get(api, &path, Duration::from_secs(5)).await?;
        let state = match answer.0 {
            200 => {
                let list: serde_json::Value = serde_json::from_slice(&answer.1).map_err(|e| {
                    format!("{}{path} answered something that is not the management API's JSON: {e}", api.base_url)
                })?;
                let present = list.as_array().is_some_and(|l| l.iter().any(|b| b["routing_key"].as_str() == Some(key)));
                if present {
                    BindingFound::Present
                } else {
                    BindingFound::Missing
                }
            }
            404 => BindingFound::NoEndpoint,
            401 | 403 => {
                return Err(format!(
                    "{} refused user {:?} (HTTP {}): the management API needs a user tagged monitoring or management",
                    api.base_url, api.username, answer.0
                ))
            }
            other => return Err(format!("{}{path} answered HTTP {other}", api.base_url)),
        };
        found.push((binding_name(queue, exchange, key), state));
    }
    Ok(found)
}
