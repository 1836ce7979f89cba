"""ExamMentor: the shared kit every service uses."""

__version__ = "0.1.0"
