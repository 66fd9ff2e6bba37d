//! Wire types shared by slipd and the slip CLI. Only these types derive Serialize/Deserialize for the wire.
