"""A package of the test module's folder: staged with it, directories too."""
