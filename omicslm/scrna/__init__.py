"""Single-cell branch: count matrix -> count bins -> gene/count-token transformer -> held-out evaluation."""
