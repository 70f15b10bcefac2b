//! Embedded segment store (issue: data plane part 1).
