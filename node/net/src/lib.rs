//! libp2p data plane (issue: data plane part 1).
