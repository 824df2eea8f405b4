//! Channel names read whole from the database, allocated once per read: a graph of a million
//! shares and 200,000 keys names a few hundred channels, and each name read as a new
//! allocation cost ~50 bytes a share and ~100 a key in a server's resident memory.

use std::collections::HashMap;

use crate::wire::{Channel, NameError};

/// The channels one read has met so far, by name.
#[derive(Default)]
pub(crate) struct ChannelNames(HashMap<Box<str>, Channel>);

impl ChannelNames {
    /// `name` as a [`Channel`], the same allocation as every earlier one of that name.
    pub(crate) fn channel(&mut self, name: &str) -> Result<Channel, NameError> {
        if let Some(c) = self.0.get(name) {
            return Ok(c.clone());
        }
        let c = Channel::new(name)?;
        self.0.insert(name.into(), c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_read_twice_is_one_allocation_and_a_bad_one_is_refused() {
        let mut names = ChannelNames::default();
        let (a, b) = (names.channel("x.y").unwrap(), names.channel("x.y").unwrap());
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert!(names.channel("").is_err());
        assert_ne!(names.channel("x.z").unwrap(), a);
    }
}
