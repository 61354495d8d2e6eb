"""msgspec wire types. Device-facing structs ignore unknown fields: old and new apps must talk."""
