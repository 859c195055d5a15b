//! Index newtypes of the core's public types.
//!
//! A host index, a statefile index and an I/O request id are all plain
//! integers underneath, and they travel side by side in the same inputs,
//! actions and warnings (`Warning::StatefileCorrupt` names a statefile and a
//! host; `Action::WriteSlot` a statefile, a request and a slot sequence). The
//! newtypes make a swap a compile error. `Debug` and `Display` print the bare
//! number, so logs and traces read as before.

use std::fmt;

macro_rules! index_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $inner);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

index_newtype!(
    /// A host's position in `Config::hosts` (the order of the host UUIDs).
    HostIndex(usize)
);

index_newtype!(
    /// A statefile's position among the configured statefiles.
    StatefileIndex(usize)
);

index_newtype!(
    /// The id of one I/O action; its completion input carries the same id.
    /// Unique per node, never reused.
    RequestId(u64)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_print_the_bare_number() {
        assert_eq!(format!("{:?}", HostIndex(3)), "3");
        assert_eq!(format!("{}", StatefileIndex(1)), "1");
        assert_eq!(format!("{:?}", Some(RequestId(42))), "Some(42)");
    }
}
