"""The files of one model in the model store (``<root>/<model_name>/``): the one list of their names.

Standard library only: the EFS sync Lambda ships this module alone beside its own.
"""

MODEL_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
CARD_FILE = "card.json"
STORE_FILES = (*MODEL_FILES.values(), CARD_FILE)  # the card last: publishing writes it last
