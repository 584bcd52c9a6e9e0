"""Features of every clip, computed once: the store (:mod:`.store`), the self-supervised backbones
(:mod:`.ssl`) and the classical MFCC/eGeMAPS features of the baseline (:mod:`.classic`)."""
