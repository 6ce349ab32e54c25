"""The items: their schema (:mod:`.schema`), the prompts built from them (:mod:`.prompts`),
the seeded synthetic conflicts (:mod:`.synthetic`), the pretrained organism's instruction
banks and held-out sentences (:mod:`.instruction_banks`) and the paper's own items
(:mod:`.real_items`)."""
