"""One module per `tao-ray` subcommand beyond `run`: each builds its actors through runtime/ from a typed recipe.
May import every other package."""
