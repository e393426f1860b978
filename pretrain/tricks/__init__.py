"""The paper's tricks, one small unit each (He et al. 2019, §3 and §5)."""
