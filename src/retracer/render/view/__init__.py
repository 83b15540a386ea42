"""``retracer view``: a run's folded call tree, as a page (:mod:`.page`), as text
(:mod:`.text`) or served (:mod:`.server`); :mod:`.model` reads and folds the
trace, :mod:`.decode` reads the folder's encoding, :mod:`.captures` shows
captured values."""
