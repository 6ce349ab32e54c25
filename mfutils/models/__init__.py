"""The models: loading any supported family offline (:mod:`.loading`) through one adapter per
family (:mod:`.adapters`), the two organisms (:mod:`.organism`, :mod:`.pretrained_organism`),
their training (:mod:`.training`, :mod:`.train_organism`, :mod:`.train_pretrained`) and the
recipe trials' acceptance rule (:mod:`.recipe_check`)."""
