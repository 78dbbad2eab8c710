"""leadscore: the command line that joins features/, training/ and serving/."""

__version__ = "0.1.0"
