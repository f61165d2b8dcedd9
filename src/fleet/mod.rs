//! Fleet mode: this service as an egress node of a LiveKit deployment. livekit-server hands
//! egress jobs to its fleet over psrpc on Redis (`wire`, `bus`, `rpc`); the node (`node`)
//! bids for them with its free CPU, runs each as the very same job the Egress API would
//! (`egress::Manager`), and reports every change back to the server (IOInfo), which keeps
//! the EgressInfo, answers ListEgress and sends the webhooks.

mod bus;
mod node;
mod report;
mod rpc;
pub(crate) mod wire;

pub use bus::BusError;
pub use node::Node;
