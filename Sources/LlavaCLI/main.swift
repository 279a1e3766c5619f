print("llava")
