from fpext._ext import built_for

__all__ = ["built_for"]
