"""The billing model names of MJ tasks (new-api's names): what a `midjourney-proxy` channel serves
unless told otherwise, and what the built-in simulator channel serves."""

MJ_MODELS = (
    "mj_imagine",
    "mj_blend",
    "mj_describe",
    "mj_shorten",
    "swap_face",
    "mj_upscale",
    "mj_variation",
    "mj_high_variation",
    "mj_low_variation",
    "mj_reroll",
    "mj_pan",
    "mj_zoom",
    "mj_custom_zoom",
    "mj_inpaint",
)
