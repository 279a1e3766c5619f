// TokenMerging
