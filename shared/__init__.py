"""What the gateway and both backends must agree on: schema, payloads, keys, tokens. No I/O."""
