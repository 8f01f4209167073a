"""The front end's composites, one module per family (the primitives' builders, which gradient
rules and passes use too, are graphc.ops.build).

mathops (activations, clip, var, std), shape (permute, flatten, pad, split), indexing, conv
(convolution and pooling), nn (softmax and the layers' functions), losses, control (gc.scan),
rounding (floor, round, mod, asin...), cumulative (cumsum, cumprod, topk), einsum, and operators
(Node's indexing and its composite methods, installed on import). ``graphc.api`` gathers them
with the builder's functions.
"""
