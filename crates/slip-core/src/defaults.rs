//! Named defaults shared by the config and the deploy machine.
