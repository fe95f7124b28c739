"""Scale-out mode: many stateless instances sharing Redis (hot state, deadlines, the
event stream) and a durable store (devices, history, keys, audit). docs/scale-out.md."""
