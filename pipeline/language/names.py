"""Suggestions for a mistyped block name: only a truly close name (a typo), or a block that is known by
another name elsewhere; otherwise the list of blocks, so that a wrong guess never hides the right one."""
from __future__ import annotations

# names other libraries and papers use for a block -> the block here
ALIASES = {
    "deconv": "conv_transpose", "transposed_conv": "conv_transpose", "convtranspose": "conv_transpose",
    "conv_transpose2d": "conv_transpose", "interpolate": "upsample", "resize": "upsample",
    "squeeze_excitation": "se", "squeeze_excite": "se", "seblock": "se", "stochastic_depth": "drop_path",
    "droppath": "drop_path", "mbconv": "inverted", "inverted_residual": "inverted", "fused_mbconv": "fused_inverted",
    "batchnorm": "norm", "bn": "norm", "layernorm": "norm", "relu": "act", "activation": "act", "fc": "linear",
    "dense_layer": "linear", "multiply": "mul", "sum": "add", "cat": "concat", "shuffle": "channel_shuffle",
    "zero_pad": "pad", "padding": "pad", "cut": "crop", "gap": "global_pool", "avg_pool": "avgpool",
    "max_pool": "maxpool", "pool": "maxpool",
}


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps ('covn')."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def close_names(word: str, known: list[str]) -> list[str]:
    """Known names one typo away (two for names of 8 letters or more), closest first; case is ignored."""
    lowered = word.lower()
    limit = 1 if len(lowered) < 8 else 2
    scored = sorted((edit_distance(lowered, name.lower()), name) for name in known)
    return [name for distance, name in scored if distance <= limit][:3]


def suggest_block(word: str, known: list[str]) -> str:
    """' (did you mean 'x'?)' for a close or aliased name, else '; blocks: a, b, ...' (every block)."""
    near = close_names(word, known)
    alias = ALIASES.get(word.lower().replace("-", "_"))
    if alias in known and alias not in near:
        near.insert(0, alias)
    if near:
        return " (did you mean " + " or ".join(f"'{n}'" for n in near) + "?)"
    return "; blocks: " + ", ".join(sorted(known))
