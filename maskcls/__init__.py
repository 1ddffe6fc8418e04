"""maskcls: a competition toolkit for mask / gender / age face classification."""

__version__ = "0.1.0"
