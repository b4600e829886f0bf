# Sources and include paths of this generated model library (include from a firmware Makefile).
OD_MODEL_DIR ?= $(dir $(lastword $(MAKEFILE_LIST)))
OD_MODEL_SRCS := $(OD_MODEL_DIR)od_model.c $(wildcard $(OD_MODEL_DIR)kernels/*.c)
OD_MODEL_INC := -I$(OD_MODEL_DIR) -I$(OD_MODEL_DIR)kernels
