"""Receipt intake: receipt photos in, OCR and field extraction out."""
