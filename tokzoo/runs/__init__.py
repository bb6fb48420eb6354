"""What the three trainers (tokenizers, fm, compose) share: the learning-rate schedule (:mod:`.schedule`) and the
run folder (:mod:`.run_folder`). Imports run one way: the trainers import this package, never the reverse."""
