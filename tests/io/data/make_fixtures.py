# Writes the tiny torch.save fixtures used by tests/io/pytorch_bin_test.cc.
# Run from this directory with a Python that has torch (Debian: /usr/bin/python3 make_fixtures.py).
import collections, json, torch

def values(n, dtype):
    return (torch.arange(n, dtype=torch.float32) * 0.5 - 1.0).to(dtype)

sd = collections.OrderedDict()
sd["w_f32"] = values(6, torch.float32).reshape(2, 3)
sd["w_bf16"] = values(4, torch.bfloat16)
sd["w_f16"] = values(4, torch.float16).reshape(2, 2)
sd["ids"] = torch.tensor([1, -2, 3], dtype=torch.int64)
sd["scalar"] = torch.tensor(7.0)
sd["empty"] = torch.zeros(0, 3)
torch.save(sd, "simple.bin")

base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
torch.save({"t": base.t(), "row": base[1], "col": base[:, 2], "same": base}, "strided.bin")

lin = torch.nn.Linear(3, 2)
with torch.no_grad():
    lin.weight.copy_(values(6, torch.float32).reshape(2, 3)); lin.bias.copy_(torch.tensor([0.25, -0.25]))
torch.save(lin.state_dict(), "module.bin")                        # OrderedDict + BUILD(_metadata)
torch.save({"state_dict": lin.state_dict()}, "wrapped.bin")
torch.save({"p": torch.nn.Parameter(torch.ones(2))}, "parameter.bin")  # _rebuild_parameter
torch.save(sd, "proto4.bin", pickle_protocol=4)                    # FRAME, MEMOIZE, STACK_GLOBAL...
torch.save({"x": {"y": torch.zeros(2)}, "z": torch.zeros(1)}, "nested_bad.bin")

torch.save({"a": values(3, torch.float32)}, "sharded/pytorch_model-00001-of-00002.bin")
torch.save({"b": values(2, torch.bfloat16)}, "sharded/pytorch_model-00002-of-00002.bin")
json.dump({"metadata": {"total_size": 16}, "weight_map": {
    "a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"}},
    open("sharded/pytorch_model.bin.index.json", "w"), indent=2)
