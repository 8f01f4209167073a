"""The front end: the functions users build graphs with, one module per family.

tensors (leaves, constants, as_node), mathops (elementwise, activations, reductions, matmul),
shape, indexing, conv (convolution and pooling), nn (softmax and the layers' functions), losses,
control (gc.scan), rounding (floor, round, mod, asin...), cumulative (cumsum, cumprod, topk), and
operators (Node's Python operators, installed on import). ``graphc.api``
gathers them.
"""
