"""dp-bench: a benchmarking harness for dynamic soft prompt tuning.

Reproduces and extends *Dynamic Prompting: A Unified Framework for Prompt Tuning*
(Yang, Cheng, Zhao, Petzold, Chen; arXiv 2303.02909).
"""

__version__ = "0.1.0"
