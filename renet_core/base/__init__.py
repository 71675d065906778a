"""Layer 0, the base: atomic files (``io``), device choice (``device``), multi-GPU helpers
(``ddp``), the paper's metrics (``metrics``) and progress bars (``progress``). Nothing here imports
another layer of ``renet_core``."""
