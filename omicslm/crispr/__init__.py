"""CRISPR branch: efficiency workbook / Doench table -> 23/30mers -> DNABERT-style models -> evaluation."""
