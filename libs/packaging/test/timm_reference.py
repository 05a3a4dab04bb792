"""timm's own answer for a DeiT checkpoint loaded at another image size (the reference of
timm-resolution.reference.spec.ts). Writes, into the folder given as argv[1]:
  checkpoint.safetensors  a distilled DeiT (pico config) at 28 px with a position embedding scaled so
                          positions matter, seeded;
  input.f32               two images at the new size (argv[2], default 40);
  cls.f32, dist.f32       the class and distillation heads' logits timm computes after loading the
                          checkpoint through its checkpoint filter (resample_abs_pos_embed defaults);
  pos_up.f32, pos_down.f32, pos_src.f32  resample_abs_pos_embed on a 14x14 grid to 24x24 and back to 9x9.
"""
import json
import struct
import sys

import torch
from timm.layers import resample_abs_pos_embed
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import checkpoint_filter_fn

out = sys.argv[1]
new_size = int(sys.argv[2]) if len(sys.argv) > 2 else 40
config = dict(patch_size=4, embed_dim=96, depth=6, num_heads=3, mlp_ratio=4, num_classes=10)


def save_f32(name, tensor):
    with open(f"{out}/{name}", "wb") as f:
        f.write(tensor.detach().contiguous().float().numpy().tobytes())


def save_safetensors(path, state):
    header, blobs, offset = {}, [], 0
    for key, value in state.items():
        data = value.detach().contiguous().float().numpy().tobytes()
        header[key] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


torch.manual_seed(20261207)
source = VisionTransformerDistilled(img_size=28, **config)
with torch.no_grad():
    source.pos_embed.normal_(0, 1)
    source.head.weight.normal_(0, 1)
    source.head_dist.weight.normal_(0, 1)
state = source.state_dict()
save_safetensors(f"{out}/checkpoint.safetensors", state)

target = VisionTransformerDistilled(img_size=new_size, **config).eval()
target.load_state_dict(checkpoint_filter_fn(state, target))
images = torch.rand(2, 3, new_size, new_size) * 4 - 2
with torch.no_grad():
    tokens = target.forward_features(images)
    save_f32("input.f32", images)
    save_f32("cls.f32", target.head(tokens[:, 0]))
    save_f32("dist.f32", target.head_dist(tokens[:, 1]))

grid = torch.randn(1, 2 + 14 * 14, 8)
save_f32("pos_src.f32", grid)
save_f32("pos_up.f32", resample_abs_pos_embed(grid, new_size=(24, 24), num_prefix_tokens=2))
save_f32("pos_down.f32", resample_abs_pos_embed(grid, new_size=(9, 9), num_prefix_tokens=2))
