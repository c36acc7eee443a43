"""FaceDancer training: the model (:mod:`.model`), its identity encoder (:mod:`.identity`), losses (:mod:`.losses`),
data (:mod:`.data`), checkpoints (:mod:`.checkpoint`), the DDP trainer (:mod:`.trainer`), export (:mod:`.export`)."""
